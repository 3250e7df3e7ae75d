"""Scripts that pytest does not run (benchmarks, the soak test, the README's screenshots), each run from the
repository root as ``python -m tests.benchmarks.<name>``; docs/benchmarks.md says what each measures.

Python runs this before any of them: they stay offline and send no analytics, and so does the ``python app.py``
each starts (it inherits the environment). A value already set wins.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
