"""`seg export`: a model as a network file, a JSON preprocessing contract and a standalone predictor (`predict.py`).

`contract` states the preprocessing, windows and label values; `network` writes TorchScript or ONNX;
`writer` assembles the folder; `standalone` is the predictor copied beside them (numpy, nibabel and torch
or onnxruntime: no seg, no MONAI); `bundle` writes the MONAI bundle layout (`--bundle`).
"""
