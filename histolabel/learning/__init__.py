"""Features, torch models, certainty metrics, BatchBALD, the guided-labeling queue and the
learning-curve simulation. Plain values in, plain values out: no AWS here.

features    hand-crafted vectors (HED/Lab colour, texture, shape, context) and masked patches
embedding   the same, slide-wide and tile by tile, from window readers
vit         a timm-layout ViT in plain torch for UNI-style foundation-model vectors
models      linear head and small CNN (MC dropout), safetensors round trip
training    class-balanced training, early stopping, per-class held-out scores
certainty   confidence, margin, negative entropy, BALD; least-certain ordering
batchbald   greedy joint-entropy batch acquisition (exact, then sampled configurations)
queue       the guided-labeling order across slides
simulation  learning curves with a simulated annotator (MoNuSeg)
cli         `histolabel embed|train|predict` through the job runner
"""
