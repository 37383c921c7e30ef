import streamlit as st

st.title("Hello Streamlit")
n = st.slider("Points", min_value=2, max_value=100, value=20)
st.line_chart([i * i for i in range(n)])
