"""Run the batch CLI inside a Blender executable on the scene it opened:

    blender -b scene.blend --python-exit-code 1 --python scripts/blender_batch.py -- --strip NAME [--out x.blend]

Everything after ``--`` goes to ``bailando_blender.batch`` (``--help`` lists it). The backend's
Python is the checkout's ``.venv`` unless ``--backend-python`` or $BAILANDO_BACKEND_PYTHON says otherwise.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bailando_blender.batch import main

arguments = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
sys.exit(main(arguments))
