"""Numbers over cells: embedding, FAISS search, duplicates, scores, weights, native kernels."""
