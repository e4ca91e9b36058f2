"""`a2sb app`: a local web app (Gradio) to restore files in the browser and see and hear the difference.

`a2sb.app.core` holds what the app does (no Gradio needed); `a2sb.app.ui` builds the page.
"""
