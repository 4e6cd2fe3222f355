"""The torch side of the block library: one ``nn.Module`` per block spec."""
