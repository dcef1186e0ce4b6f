"""The Streamlit app for clinicians; it sits on top of the ``Assistant`` API."""
