import json
import os

# Nothing may be fetched: the model comes from the mounted cache.
os.environ["HF_HUB_OFFLINE"] = "1"

import gradio as gr  # noqa: E402
from huggingface_hub import hf_hub_download  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

REPO = "sentence-transformers/all-MiniLM-L6-v2"


def fetch(name: str) -> str:
    return hf_hub_download(REPO, name, local_files_only=True)


config = json.load(open(fetch("config.json")))
weights = load_file(fetch("model.safetensors"))
tokenizer = Tokenizer.from_file(fetch("tokenizer.json"))
table = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))
assert table.shape[1] == config["hidden_size"]


def embed(text: str):
    ids = tokenizer.encode(text or " ").ids
    return table[ids].mean(axis=0)


def compare(a: str, b: str) -> str:
    va, vb = embed(a), embed(b)
    cosine = float((va * vb).sum() / (((va**2).sum() * (vb**2).sum()) ** 0.5 or 1.0))
    return f"cosine similarity {cosine:.3f} ({config['hidden_size']}-dimensional embeddings)"


demo = gr.Interface(
    fn=compare,
    inputs=[gr.Textbox(label="First sentence"), gr.Textbox(label="Second sentence")],
    outputs=gr.Textbox(label="Similarity"),
    title=f"{REPO}: {len(weights)} tensors loaded offline",
)

if __name__ == "__main__":
    demo.launch()
