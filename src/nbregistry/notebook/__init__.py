"""The notebook surface: magics (``%load_ext nbregistry``), panels and rich display.

The only package that imports IPython and ipywidgets; nothing here is imported by
``import nbregistry``.
"""
