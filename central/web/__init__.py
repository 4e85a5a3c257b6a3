"""The web pages: analyse a clip in the browser (upload, the edge pipeline in a worker, the annotated video with
its action timeline) and the live store dashboard. Needs the `web` extra (jinja2, python-multipart, av, scipy)."""
