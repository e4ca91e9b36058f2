"""Training A2SB bridge models (docs/training.md; the method: docs/method.md §Training).

One module per concept:

- `config`: the typed configuration of a run (`TrainConfig`, `DataConfig`, `load_config`)
- `manifests`: the CSV lists of training audio (`write_manifest`, `read_manifest`)
- `datasets`: training crops with on-the-fly degradations, validation items, the resumable loader
- `pictures`: a batch of items -> the x0, x1, mask and loss mask pictures of a step
- `trainer`: the network, optimiser, EMA, loss and optimiser step of one process
- `validation`: validation losses and restorations during a run
- `state`: derived seeds, random states and training checkpoints (exact resume)
- `distributed`: DDP ranks under torchrun or srun
- `loop`: the run (`run_training`): logging, checkpoints, signals
- `export`: a model folder from one or several expert runs (`export_runs`)

The commands (`a2sb data`, `a2sb train`, `a2sb export`) are in a2sb.cli.training.
"""

from .config import DataConfig, TrainConfig, load_config, load_data_config, save_config
from .distributed import DistInfo, distributed_env
from .export import export_runs
from .loop import run_training
from .state import load_checkpoint, save_checkpoint
from .trainer import EMA, Trainer, init_weights, learning_rate

__all__ = ["DataConfig", "TrainConfig", "load_config", "load_data_config", "save_config", "DistInfo",
           "distributed_env", "export_runs", "run_training", "load_checkpoint", "save_checkpoint", "EMA",
           "Trainer", "init_weights", "learning_rate"]
