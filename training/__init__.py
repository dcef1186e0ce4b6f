"""Training, apart from the product (as open_clip_train is apart from open_clip): the trainers behind
``medrag train ...``, their data builders and losses. Only evaluation and the command line import it."""
