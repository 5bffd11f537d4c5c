"""The FiftyOne layer: fields, runs, views and exports over the FiftyOne-free core."""
