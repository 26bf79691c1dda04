"""Training the codec model (needs the ``train`` extra).

- :mod:`~vqcodec.train.trainer`: ``vqcodec train``: new, fine-tuned or resumed runs, checkpoints, the final fit;
- :mod:`~vqcodec.train.evaluation`: coding tables fitted and real coded rates measured on held-out photos;
- :mod:`~vqcodec.train.data`: random crops and pre-cut patches; :mod:`~vqcodec.train.photos`: finding and
  loading the photos (no Keras).
"""
