"""Input front ends: what turns raw audio, images and text into the arrays
the (pre-trained) encoders read, shared by the datasets that need them."""
