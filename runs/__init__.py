"""The flow runtime: a pure engine over canonical documents (`engine.py`), run records,
schedules, the Runs tab and its API."""
