;; A reactor: no `_start` export.
(module (memory 1) (func (export "_initialize")))
