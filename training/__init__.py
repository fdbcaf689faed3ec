"""Training TinyLLaVA-style models: LLM + CLIP/SigLIP tower + ``mlp2x_gelu`` connector as HF Llava.

``python -m training pretrain|finetune|share|lora|qlora|demo --recipe FILE [overrides]``; see docs/training.md.
The modules are small and each has one job:

- ``recipe``: the recipe dataclass, YAML files and command-line overrides, checked before anything loads;
- ``conversation``: LLaVA conversations rendered per chat template, labels on the assistant turns only;
- ``data``: the LLaVA-format JSON dataset, images, the collator, bad samples counted and skipped;
- ``sampler``: batches grouped by modality and length;
- ``model``: assembling (or loading) the Llava model, the ``<image>`` token, what is trainable, LoRA;
- ``saving``: HF Llava checkpoints with processor, chat template, ``conv_mode`` and ``mm_projector.bin``;
- ``train``: the HF Trainer (optimizer groups, DeepSpeed, resume);
- ``callbacks``: harness evaluation of checkpoints during training (the only place that uses ``harness``);
- ``demo``: the tiny demo model trained on the synthetic demo data's train split.
"""
