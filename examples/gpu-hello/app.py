import os
import shutil
import subprocess

import gradio as gr


def gpus() -> str:
    """The GPUs this container sees, or why it sees none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "No GPU: nvidia-smi is not here, so this Space runs on CPU."
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"No GPU: nvidia-smi failed ({e}), so this Space runs on CPU."
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not lines:
        return "No GPU visible, so this Space runs on CPU."
    return "GPUs: " + "; ".join(lines)


def report(_: str = "") -> str:
    visible = os.environ.get("NVIDIA_VISIBLE_DEVICES", "unset")
    return f"{gpus()} (NVIDIA_VISIBLE_DEVICES={visible})"


demo = gr.Interface(
    fn=report,
    inputs=gr.Textbox(label="Anything"),
    outputs=gr.Textbox(label="Hardware"),
    title="Hello GPU",
    description=report(),
)

if __name__ == "__main__":
    demo.launch()
