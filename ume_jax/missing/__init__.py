"""Where missing modalities are decided: per-sample augmentation masks,
training-set missingness, evaluation scenarios and their masks, the keys they
are drawn from, and what stands in for an absent modality."""
