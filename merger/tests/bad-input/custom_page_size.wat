;; Custom page sizes.
(module (memory 1 (pagesize 1)) (func (export "_start")))
