"""The three tasks, one module each, single and natively batched environment side by side.

Modules are imported by their Gymnasium entry points, so making the linear task never loads
the data layer.
"""
