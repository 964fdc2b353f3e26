"""`"batch=2,model=4"` strings, as the command line and examples take meshes."""


def parse_pairs(text, argument="mesh"):
    """`"batch=2,model=4"` -> `{"batch": 2, "model": 4}` (sizes >= 1, in order).

    Raises a `ValueError` naming `argument` and `text` otherwise.
    """
    shape = {}
    for part in str(text).split(","):
        name, _, size = part.partition("=")
        if not name.strip() or not size.strip().isdigit() or int(size) < 1:
            raise ValueError(
                f"{argument} must look like name=2,other=4. Received: {argument} {text}"
            )
        shape[name.strip()] = int(size)
    return shape
