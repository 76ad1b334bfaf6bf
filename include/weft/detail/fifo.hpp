// SPDX-License-Identifier: MIT
// weft: an intrusive FIFO of nodes linked through their m_next member: the
// wait queues of the synchronisation objects, a worker's ready fibers and
// yielded tasks. Not thread-safe: its owner guards it. Plumbing.
#pragma once

namespace weft::detail {

template <class Node>
struct intrusive_fifo {
  Node* m_head = nullptr;
  Node* m_tail = nullptr;

  bool empty() const noexcept { return m_head == nullptr; }

  // n goes last; it must not be in any list.
  void push_back(Node* n) noexcept {
    n->m_next = nullptr;
    if (m_tail != nullptr) {
      m_tail->m_next = n;
    } else {
      m_head = n;
    }
    m_tail = n;
  }

  // n goes first; it must not be in any list.
  void push_front(Node* n) noexcept {
    n->m_next = m_head;
    m_head = n;
    if (m_tail == nullptr) m_tail = n;
  }

  // The first node, unlinked (its m_next is left as it was), or null.
  Node* pop_front() noexcept {
    Node* n = m_head;
    if (n != nullptr) {
      m_head = n->m_next;
      if (m_head == nullptr) m_tail = nullptr;
    }
    return n;
  }

  // Every node, as a list linked by m_next; the FIFO is empty after.
  Node* take_all() noexcept {
    Node* n = m_head;
    m_head = nullptr;
    m_tail = nullptr;
    return n;
  }
};

}  // namespace weft::detail
