"""Train your own PyTorch model with token-level loss smoothing (Elbayad et al. 2018): the model, data and
training loop of own_model_searnn.py, with searnn.TokenSmoothingLoss instead of SeaRNN.

Run: python examples/own_model_smoothing.py [--epochs N]   (about 15 s on one free CPU core)
"""

from __future__ import annotations

from own_model_searnn import V_TGT, main

import searnn

if __name__ == "__main__":
    # similarity "uniform" needs no word vectors (the reversal task's tokens have none)
    main(searnn.TokenSmoothingLoss(vocab=V_TGT, alpha=0.2, similarity="uniform"), name="token smoothing")
