"""Autograd Labs' grader: references computed with torch.autograd, checks, batch grading."""
