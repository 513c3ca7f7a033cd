"""Numeric building blocks shared by the method, the baselines and zero-shot: GPU numerics and memory planning
(`gpu`), Nyström attention (`nystrom`, `lumped_nystrom`) and the tile vote (`vote`). Imports no other package."""
