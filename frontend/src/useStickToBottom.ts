import { type TouchEvent, type WheelEvent, useCallback, useEffect, useLayoutEffect, useRef } from 'react'

/**
 * useStickToBottom keeps a scrolling element at its bottom after every
 * render of the calling component (so as its content grows), unless the
 * person scrolled up: a wheel turn or a swipe upwards lets go, and scrolling
 * back to the bottom takes hold again. Spread the returned props on the
 * element; call follow() to take hold again, e.g. when the person sends a
 * new message.
 */
export function useStickToBottom<T extends HTMLElement>() {
  const ref = useRef<T>(null)
  const stick = useRef(true)
  const lastTop = useRef(0)
  const touchY = useRef(0)

  const pin = useCallback(() => {
    const el = ref.current
    if (el && stick.current) {
      el.scrollTop = el.scrollHeight
      lastTop.current = el.scrollTop
    }
  }, [])

  // No dependency list on purpose: what grows is the component's own
  // output, and pinning costs one scrollTop write per render.
  useLayoutEffect(pin)

  // Stay at the bottom when the element itself changes size (a phone's
  // keyboard, a resized prompt box).
  useEffect(() => {
    const el = ref.current
    if (!el || typeof ResizeObserver === 'undefined') {
      return
    }
    const observer = new ResizeObserver(pin)
    observer.observe(el)
    return () => observer.disconnect()
  }, [pin])

  const onScroll = () => {
    const el = ref.current
    if (!el) {
      return
    }
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 40
    const movedUp = el.scrollTop < lastTop.current
    if (movedUp && !atBottom) {
      stick.current = false
    } else if (atBottom && !movedUp) {
      stick.current = true
    }
    lastTop.current = el.scrollTop
  }
  const onWheel = (e: WheelEvent) => {
    if (e.deltaY < 0) {
      stick.current = false
    }
  }
  const onTouchStart = (e: TouchEvent) => {
    touchY.current = e.touches[0]?.clientY ?? 0
  }
  const onTouchMove = (e: TouchEvent) => {
    // A finger moving down scrolls the content up.
    if ((e.touches[0]?.clientY ?? 0) > touchY.current) {
      stick.current = false
    }
  }

  const follow = useCallback(() => {
    stick.current = true
  }, [])

  return { follow, props: { ref, onScroll, onWheel, onTouchStart, onTouchMove } }
}
