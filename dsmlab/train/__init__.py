"""Model making: the bundled models' recipe, on top of the inference core (never the reverse).

corpus -> audio tokenizer -> LM at a chosen delay -> semantic-VAD heads, each a step that runs
and reads alone (`python -m dsmlab.train.<step> --help`).
"""
