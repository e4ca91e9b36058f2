"""Validation during training: losses at fixed times t with fixed noise (pooled over ranks), and
restorations of a few validation clips with the sampler, scored and written as audio and pictures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .pictures import batch_to, build_batch
from .state import mix_seed

if TYPE_CHECKING:
    from .loop import RunLogger
    from .trainer import Trainer

def _spectrogram_figure(pictures: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """An RGB image of compressed-magnitude pictures (rows = frequency) stacked vertically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 2.2 * len(pictures)), dpi=80)
    FigureCanvasAgg(fig)
    for i, (title, mag) in enumerate(pictures):
        ax = fig.add_subplot(len(pictures), 1, i + 1)
        ax.imshow(mag, origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=max(float(mag.max()), 1e-3))
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("row")
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()



class Validator:
    """Validation losses at fixed t (fixed noise) and restorations of a few validation clips."""

    def __init__(self, trainer: Trainer, dataset, logger: RunLogger, run_dir: Path):
        self.trainer, self.dataset, self.logger = trainer, dataset, logger
        self.run_dir = run_dir
        self.indices = list(range(len(dataset)))
        self.first_sample_step: int | None = None

    def _built(self, indices: list[int], seed: int) -> tuple[dict, dict]:
        from torch.utils.data import default_collate

        batch = batch_to(default_collate([self.dataset[i] for i in indices]), self.trainer.device)
        gen = torch.Generator(device=self.trainer.device).manual_seed(seed)
        return build_batch(batch, prior=self.trainer.config.data.x1_prior(), generator=gen), batch

    @torch.no_grad()
    def losses(self, step: int) -> dict:
        tr, v = self.trainer, self.trainer.config.validation
        model = tr.eval_module(v.use_ema)
        model.eval()
        rank, world = tr.dist.rank, tr.dist.world_size
        sums = torch.zeros(2 * len(v.t_values), dtype=torch.float64, device=tr.device)
        mine = self.indices[rank::world]  # each rank validates its share; the sums are pooled
        for b in range(0, len(mine), v.batch_size):
            chunk = mine[b:b + v.batch_size]
            pictures, _ = self._built(chunk, mix_seed(v.noise_seed, chunk[0]))
            for j, tv in enumerate(v.t_values):
                gen = torch.Generator(device=tr.device).manual_seed(mix_seed(v.noise_seed, chunk[0], j))
                noise = torch.randn(pictures["x0"].shape, generator=gen, device=tr.device)
                t = torch.full((len(chunk),), float(tv), dtype=torch.float64)
                num, den = tr.masked_sums(pictures, t, noise, model)
                sums[2 * j] += num.double()
                sums[2 * j + 1] += den.double()
        if tr.dist.enabled:
            import torch.distributed as dist

            dist.all_reduce(sums)
        values = {f"loss_t{tv:g}": float(sums[2 * j] / sums[2 * j + 1].clamp_min(1.0))
                  for j, tv in enumerate(v.t_values)}
        values["loss_mean"] = float(np.mean(list(values.values())))
        return values

    @torch.no_grad()
    def restorations(self, step: int) -> dict:
        """Restore the first clips with the sampler (main rank only) and score them."""
        from ..representation import from_representation
        from ..sampler import sample, time_grid

        tr, v = self.trainer, self.trainer.config.validation
        model = tr.eval_module(v.use_ema)
        model.eval()
        clips = self.indices[: v.sample_clips]
        if not clips:
            return {}
        if self.first_sample_step is None:
            self.first_sample_step = step
        pictures, raw = self._built(clips, mix_seed(v.noise_seed, clips[0]))
        width = pictures["x1"].shape[-1]

        def denoise(x, t):
            with tr.autocast():
                return model(x, torch.full((x.shape[0],), t, device=x.device)).float()

        x0_hat = sample(denoise, pictures["x1"], pictures["mask"], time_grid(v.sample_steps),
                        schedule=tr.schedule, sde=v.sampler == "sde", window=width, hop=width,
                        seed=v.noise_seed, batch_size=len(clips))
        length = raw["clean"].shape[-1]
        restored = from_representation(x0_hat.float().cpu(), length, phase_fix=v.phase_fix).numpy()
        clean = raw["clean"].float().cpu().numpy()
        # The model's input as audio (noise in the hole): the baseline the restoration should beat.
        degraded = from_representation(pictures["x1"].float().cpu(), length, phase_fix=True).numpy()
        values: dict[str, float] = {}
        try:
            from ..metrics import compute_metrics
        except ImportError:
            compute_metrics = None
        if compute_metrics is not None:
            scores = [compute_metrics(clean[i], restored[i]) for i in range(len(clips))]
            for key in scores[0]:
                values[key] = float(np.mean([s[key] for s in scores]))
            # the input's scores, to read the restoration's against
            base = [compute_metrics(clean[i], degraded[i]) for i in range(len(clips))]
            for key in ("lsd", "sispec", "log_sispec"):
                if key in base[0]:
                    values[f"degraded_{key}"] = float(np.mean([s[key] for s in base]))
        self._write_examples(step, pictures, x0_hat, clean, restored, degraded)
        return values

    def _write_examples(self, step, pictures, x0_hat, clean, restored, degraded) -> None:
        from scipy.io import wavfile

        folder = self.run_dir / "samples"
        folder.mkdir(exist_ok=True)
        sr = 44100
        for i in range(len(restored)):
            mags = [("degraded", pictures["x1"][i, 0].float().cpu().numpy()),
                    (f"restored (step {step})", x0_hat[i, 0].float().cpu().numpy()),
                    ("clean", pictures["x0"][i, 0].float().cpu().numpy())]
            image = _spectrogram_figure(mags)
            self.logger.image(f"val_sample/clip{i}", image, step)
            if self.trainer.config.validation.log_audio:
                self.logger.audio(f"val_sample/clip{i}/restored", restored[i], step, sr)
                if step == self.first_sample_step:
                    self.logger.audio(f"val_sample/clip{i}/clean", clean[i], step, sr)
                    if degraded is not None:
                        self.logger.audio(f"val_sample/clip{i}/degraded", degraded[i], step, sr)
            wavfile.write(folder / f"step{step:08d}_clip{i}.wav", sr, restored[i].astype(np.float32))
            for name, wave in (("clean", clean), ("degraded", degraded)):
                target = folder / f"clip{i}_{name}.wav"
                if wave is not None and not target.exists():
                    wavfile.write(target, sr, wave[i].astype(np.float32))
