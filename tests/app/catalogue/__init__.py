"""The catalogue of bad input, split by what is bad: data, options, checkpoints, conditions.

`tests/app/test_bad_input.py` joins the four tables into one and runs every case.
"""
