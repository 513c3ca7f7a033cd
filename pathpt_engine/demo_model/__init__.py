"""Training of the demo vision-language model (`resources/models/demo/`), kept out of the backbone registry.

`python -m pathpt_engine.demo_model.train --out resources/models/demo` trains it; the model itself is a KEEP-format
folder that `pathpt_engine.backbones` loads like any other. Nothing in the engine imports this package.
"""
