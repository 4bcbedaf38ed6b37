"""The networks (torch): VQ-VAE choreographic memory, motion GPT, critic; checkpoints."""
