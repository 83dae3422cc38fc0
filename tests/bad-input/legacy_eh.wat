(module (memory 1) (tag $t) (func (export "_start") try throw $t catch $t end))
