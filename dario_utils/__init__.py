"""DarioNet study: data split, models, training, evaluation and figures (see README)."""
import warnings

# Libraries import tqdm.auto; in a kernel without ipywidgets it warns (with a file path) and
# falls back to the text bars the study uses anyway.
warnings.filterwarnings("ignore", message="IProgress not found")
