"""PathPT engine: slides, features, vision-language backbones, PathPT few-shot prompt-tuning.

The engine never imports Qt; the GUI (`pathpt_gui`) drives it through jobs (see `pathpt_engine.jobs`).
"""

__version__ = "0.1.0"
