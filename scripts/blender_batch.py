"""Run the batch CLI inside a Blender executable on the scene it opened:

    blender -b scene.blend --python-exit-code 1 --python blender_batch.py -- --strip NAME [--out x.blend]

Everything after ``--`` goes to the extension's ``batch`` module (``--help`` lists it). The
extension installed and enabled in that Blender is used, with its bundled backend, as the
panel uses it (the script ships inside the extension's zip too); without one, the checkout this
script sits in, with its ``.venv``'s backend unless ``--backend-python`` or
$BAILANDO_BACKEND_PYTHON says otherwise.
"""

import importlib
import sys
from pathlib import Path

import addon_utils
import bpy

here = Path(__file__).resolve().parent
installed = [name for name in bpy.context.preferences.addons.keys() if name.rsplit(".", 1)[-1] == "bailando_blender"]
if not installed and (here / "blender_manifest.toml").is_file():
    # Run from an installed extension that this Blender has not enabled: enable it for this run.
    installed = [f"bl_ext.{here.parent.name}.{here.name}"]
    addon_utils.enable(installed[0], default_set=False)
if installed and installed[0] != "bailando_blender":
    batch = importlib.import_module(f"{installed[0]}.batch")
else:
    sys.path.insert(0, str(here.parent))
    batch = importlib.import_module("bailando_blender.batch")

arguments = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
sys.exit(batch.main(arguments))
