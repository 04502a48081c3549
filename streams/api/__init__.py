"""The case API on the worker's web server: its views, who the caller is, and forwarding to
the worker that holds a site; and the client the CLI and the devtools call it with.
"""
