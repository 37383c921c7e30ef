import gradio as gr


def greet(name: str) -> str:
    return f"Hello, {name or 'world'}!"


demo = gr.Interface(fn=greet, inputs=gr.Textbox(label="Name"), outputs=gr.Textbox(label="Greeting"))

if __name__ == "__main__":
    demo.launch()
