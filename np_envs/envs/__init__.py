"""The tasks, one module each, single and natively batched environment side by side.

The three built-in tasks (linear teacher, SARCOS, MNIST) and ``NPDataset-v0``, which turns your
own arrays into the same kind of task. Modules are imported by their Gymnasium entry points, so
making the linear task never loads the data layer; none of them imports torch or ``agents``.
"""
