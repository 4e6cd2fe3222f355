from . import readme

CASES = [readme("t2t_vit", 23_465_986), readme("pit", 47_499_752)]
