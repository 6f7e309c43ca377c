"""Delivery: what turns the grading core (autograder.engine) into what students, TAs and
Gradescope use: the command line, the student release, submission zips, the autograder zips,
the batch regrade."""
