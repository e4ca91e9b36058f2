"""The page of `a2sb app` (Gradio Blocks) over an `AppCore`, and `serve` that runs it.

Gradio is imported here only; `a2sb.app.core` does the work. Element ids (`elem_id`) name what the browser
test looks for: upload, file-choice, findings, cutoff-on, cutoff-hz, holes-on, gaps, quality, model, seed, restore,
cancel, status, report, spec-before, spec-after, play-input, play-restored, play-difference, download.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from ..restorer import QUALITIES
from .core import BUNDLED, AppCore, Cancelled, format_gap_list, one_line, parse_gap_list

DEFAULT_CUTOFF_HZ = 16000.0
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]  # nothing fetched from a font CDN
SYSTEM_MONO = ["ui-monospace", "monospace"]
INTRO = ("**a2sb**: restore damaged music. Drop one or more audio files, check what was found "
         "(a lowpass cutoff, the holes of a lossy codec, dropouts), change it if you like, and press **Restore**.")


def build(core: AppCore):
    import gradio as gr

    with gr.Blocks(title="a2sb: restore music", analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        uploads = gr.State([])
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(label="Audio files (drop several at once)", file_count="multiple",
                                elem_id="upload")
                choice = gr.Dropdown(label="File to restore", choices=[], elem_id="file-choice",
                                     interactive=True)
                findings = gr.Textbox(label="Found", lines=4, interactive=False, elem_id="findings")
            with gr.Column(scale=1):
                with gr.Row():
                    cutoff_on = gr.Checkbox(label="Regenerate the band above the cutoff", value=False,
                                            elem_id="cutoff-on")
                    cutoff_hz = gr.Number(label="Cutoff (Hz)", value=DEFAULT_CUTOFF_HZ, minimum=1,
                                          elem_id="cutoff-hz")
                holes_on = gr.Checkbox(label="Repair codec holes below the cutoff (lossy decodes: MP3, Vorbis, ...)",
                                       value=False, elem_id="holes-on")
                gaps = gr.Textbox(label="Gaps to fill (start-end, comma separated)",
                                  placeholder="0:12.0-0:12.3, 1:04.5-1:04.8", elem_id="gaps")
                with gr.Row():
                    quality = gr.Radio(list(QUALITIES), value="default", label="Quality", elem_id="quality")
                    model = gr.Dropdown(list(core.models), value=BUNDLED, label="Model", elem_id="model")
                    seed = gr.Number(label="Seed", value=0, precision=0, elem_id="seed")
                with gr.Row():
                    restore = gr.Button("Restore", variant="primary", elem_id="restore")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
        status = gr.Markdown("", elem_id="status")
        with gr.Row():
            before = gr.Image(label="Before", type="filepath", interactive=False, elem_id="spec-before")
            after = gr.Image(label="After", type="filepath", interactive=False, elem_id="spec-after")
        with gr.Row():
            play_in = gr.Audio(label="Input", type="filepath", interactive=False, elem_id="play-input")
            play_out = gr.Audio(label="Restored", type="filepath", interactive=False, elem_id="play-restored")
            play_diff = gr.Audio(label="Regenerated part alone (restored minus input)", type="filepath",
                                 interactive=False, elem_id="play-difference")
        with gr.Row():
            report = gr.Textbox(label="Report", lines=6, interactive=False, elem_id="report")
            download = gr.File(label="Download the restored file", interactive=False, elem_id="download")

        def on_upload(paths):
            found = core.analyse(paths)
            good = [u.name for u in found if u.plan is not None]
            message = "\n\n".join(f"**{u.name}**: {u.error}" for u in found if u.error)
            return (found, gr.update(choices=good, value=good[0] if good else None), message)

        def on_choose(found, name):
            """The chosen file's findings in the boxes; the results of another file cleared."""
            results = [None] * 7
            upload = next((u for u in found if u.name == name), None)
            if upload is None or upload.plan is None:
                return ["", gr.update(), gr.update(), gr.update(), "", *results]
            plan = upload.plan
            return [upload.found(), plan.cutoff_hz is not None,
                    DEFAULT_CUTOFF_HZ if plan.cutoff_hz is None else round(plan.cutoff_hz), bool(plan.holes),
                    format_gap_list(plan.gaps), *results]

        def on_restore(found, name, on, hz, holes_value, gap_text, quality_name, model_name, seed_value,
                       progress=gr.Progress()):  # noqa: B008 (how Gradio injects its progress bar)
            keep = [gr.skip()] * 7
            upload = next((u for u in found if u.name == name), None)
            if upload is None:
                return ["error: upload an audio file first", *keep]
            try:
                # the cutoff and gap list as shown (rounded to 1 Hz, 10 ms) stand for the detected ones while
                # they are unchanged, so the result is the CLI's
                plan = upload.plan
                gap_list = plan.gaps if plan and gap_text.strip() == format_gap_list(plan.gaps) \
                    else parse_gap_list(gap_text)
                if plan and plan.cutoff_hz is not None and hz is not None and float(hz) == round(plan.cutoff_hz):
                    hz = plan.cutoff_hz
                # the hole repair as detected unless the box was changed
                holes = None if plan and bool(holes_value) == bool(plan.holes) else bool(holes_value)
                progress(0.0, desc="restoring")
                result = core.restore(upload, cutoff_on=bool(on), cutoff_hz=hz, gaps=gap_list, holes=holes,
                                      quality=quality_name, model=model_name, seed=int(seed_value or 0),
                                      progress=lambda done, total: progress((done, total), desc="restoring",
                                                                            unit="windows"))
            except Cancelled:
                return ["cancelled: nothing was written", *keep]
            except Exception as err:  # one line in the page, never a traceback
                return [one_line(err), *keep]
            return [f"done: {result.output.name}", str(result.before_png), str(result.after_png),
                    str(result.input_player), str(result.output), str(result.difference), result.text,
                    str(result.output)]

        files.upload(on_upload, [files], [uploads, choice, status])
        results = [before, after, play_in, play_out, play_diff, report, download]
        choice.change(on_choose, [uploads, choice], [findings, cutoff_on, cutoff_hz, holes_on, gaps, *results])
        restore.click(on_restore, [uploads, choice, cutoff_on, cutoff_hz, holes_on, gaps, quality, model, seed],
                      [status, before, after, play_in, play_out, play_diff, report, download],
                      concurrency_limit=1, concurrency_id="restore")
        cancel.click(lambda: core.cancel.set(), None, None, queue=False)
    return demo


def serve(*, host: str = "127.0.0.1", port: int = 7860, models: list[str] | None = None, device=None,
          max_mb: float = 200.0, ready=None, block: bool = True):
    """Start the app; prints its address. Everything it writes (uploads, results, Gradio's cache) goes to
    one temporary folder, removed on exit. `ready(url)` is called once it listens; `block=False` returns
    (demo, core) instead of waiting (tests)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    root = Path(tempfile.mkdtemp(prefix="a2sb-app-"))
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio")  # read by Gradio when it is first imported
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    import gradio as gr

    named = {BUNDLED: "default"}
    for folder in models or []:
        named[str(folder)] = str(folder)
    core = AppCore(root / "work", named, device=device, max_mb=max_mb)
    core.work.mkdir(parents=True)
    demo = build(core)
    demo.queue(default_concurrency_limit=1)
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO)
    demo.launch(server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=True,
                max_file_size=f"{max_mb:g}mb", ssr_mode=False, quiet=True, theme=theme, footer_links=[],
                allowed_paths=[str(root)])
    url = f"http://{host}:{demo.server_port}/"
    print(f"a2sb app running at {url} (Ctrl+C to stop; its files are in {root}, removed on exit)", flush=True)
    if ready is not None:
        ready(url)
    if not block:
        return demo, core
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` cleans up as Ctrl+C does
    try:
        demo.block_thread()
    finally:
        demo.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0
