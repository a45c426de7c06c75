"""The lecture's MLP: forward pass, B1–B7 backpropagation, activations, losses, init, optimizers."""
