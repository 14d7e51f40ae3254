# Regenerates the numpy-written fixtures read by tests/io/npy_test.cc (run from the repo root
# with a Python that has numpy: /usr/bin/python3 tests/data/npy/generate.py).
import numpy as np

d = 'tests/data/npy/'
np.save(d + 'be_f4.npy', np.arange(6, dtype='>f4').reshape(2, 3) * 0.5)
np.save(d + 'fortran_f8.npy', np.asfortranarray(np.arange(24, dtype='<f8').reshape(2, 3, 4)))
with open(d + 'v2_i2.npy', 'wb') as f:
    np.lib.format.write_array(f, np.array([-3, 7, 1000], dtype='<i2'), version=(2, 0))
with open(d + 'v3_u2.npy', 'wb') as f:
    np.lib.format.write_array(f, np.array([[1, 2], [65535, 4]], dtype='<u2'), version=(3, 0))
np.savez(d + 'savez.npz', weights=np.arange(6, dtype=np.float32).reshape(2, 3),
         step=np.array(42, dtype=np.int64), mask=np.array([True, False, True]),
         empty=np.zeros((0, 3), dtype=np.uint8))
np.savez_compressed(d + 'savez_compressed.npz',
                    half=np.array([1.5, -2.0, 65504.0], dtype=np.float16),
                    ids=np.arange(100, dtype=np.int32).reshape(10, 10))
