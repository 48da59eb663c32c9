// A bounded map that forgets its least recently used entry first.
export class Lru<K, V> {
  private readonly map = new Map<K, V>()

  constructor (private readonly max: number, private readonly onEvict?: (key: K, value: V) => void) {}

  get (key: K): V | undefined {
    const value = this.map.get(key)
    if (value !== undefined) {
      this.map.delete(key)
      this.map.set(key, value)
    }
    return value
  }

  set (key: K, value: V): void {
    this.map.delete(key)
    this.map.set(key, value)
    if (this.map.size > this.max) {
      const [oldKey, oldValue] = this.map.entries().next().value as [K, V]
      this.map.delete(oldKey)
      this.onEvict?.(oldKey, oldValue)
    }
  }

  delete (key: K): void {
    const value = this.map.get(key)
    if (value === undefined) return
    this.map.delete(key)
    this.onEvict?.(key, value)
  }

  clear (): void {
    for (const key of [...this.map.keys()]) this.delete(key)
  }
}
