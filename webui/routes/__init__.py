"""One module per resource, each with its HTML pages (``pages``) and, where it has one, its JSON API (``api``).

``webui.app`` includes them; they import services, ``webui.deps`` and ``webui.rendering``, never
each other or the app.
"""
