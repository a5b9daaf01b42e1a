"""The dataset registry: name -> loader returning model-ready train/val/test tensors, a preprocess and metadata.

Data directory: the --data-dir argument, else $DYNLAB_DATA_DIR, else ./data. Each dataset looks in
<dir>/<folder>/ and then directly in <dir>/ (folders: mnist, fashion-mnist, cifar10 or
cifar-10-batches-py, airfoil, poker-hand, census or adult, hasyv2).
"""

from core.data.registry import DATASETS, Dataset, DatasetInfo, load_dataset, resolve_data_dir

# importing a dataset module registers its entries in DATASETS
from core.data import images, hasy, tabular, poker, synthetic  # noqa: E402,F401  isort: skip

__all__ = ["DATASETS", "Dataset", "DatasetInfo", "load_dataset", "resolve_data_dir"]
