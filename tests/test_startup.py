"""How the service starts: nothing heavy before the gevent worker patches."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_settings_import_loads_no_network_library():
    """gunicorn.conf.py imports zto.settings in the master; ssl imported there would be
    unpatched in gevent workers (gevent's MonkeyPatchWarning)."""
    code = "import sys, zto.settings; print(sorted({'ssl', 'requests', 'urllib3', 'flask'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_gevent_worker_starts_without_patch_warnings(live):
    assert "MonkeyPatchWarning" not in live.log()
    assert "Using worker: gevent" in live.log()
