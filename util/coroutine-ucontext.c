/*
 * Coroutine backend: makecontext() builds a new stack once, after which
 * every switch is a _setjmp()/_longjmp() pair (no signal-mask syscalls).
 *
 * A coroutine's stack is reused through the pool in qemu-coroutine.c: the
 * trampoline never returns; when the entry function finishes it switches
 * back with COROUTINE_TERMINATE and later resumes at the top of the loop
 * with a new entry function.
 */
#include "qemu/osdep.h"
#include "qemu/coroutine_int.h"

#include <setjmp.h>
#include <sys/mman.h>
#include <ucontext.h>

#if defined(__SANITIZE_ADDRESS__)
#define CONFIG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONFIG_ASAN 1
#endif
#endif

#ifdef CONFIG_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define COROUTINE_STACK_SIZE (1 * MiB)

typedef struct {
    Coroutine base;
    void *stack;            /* mmap()ed, lowest page is a guard page */
    size_t stack_size;
    sigjmp_buf env;
#ifdef CONFIG_ASAN
    void *fake_stack;
#endif
} CoroutineUContext;

/* The thread's own stack, used as "from" when entering from outside. */
static __thread CoroutineUContext leader;
static __thread Coroutine *current;

static inline void start_switch_fiber(void **fake_stack_save,
                                      const void *bottom, size_t size)
{
#ifdef CONFIG_ASAN
    __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#endif
}

static inline void finish_switch_fiber(void *fake_stack_save)
{
#ifdef CONFIG_ASAN
    const void *bottom_old;
    size_t size_old;

    __sanitizer_finish_switch_fiber(fake_stack_save, &bottom_old, &size_old);
    if (!leader.stack) {
        leader.stack = (void *)bottom_old;
        leader.stack_size = size_old;
    }
#endif
}

/*
 * makecontext() passes int arguments only, so the pointer travels in two
 * halves.
 */
static void coroutine_trampoline(int lo, int hi)
{
    CoroutineUContext *self;
    Coroutine *co;
    void *fake_stack_save = NULL;

    self = (void *)(((uintptr_t)(unsigned)hi << 32) | (unsigned)lo);
    co = &self->base;

    finish_switch_fiber(NULL);

    /* Initialise the jump buffer and return to qemu_coroutine_new(). */
    if (!_setjmp(self->env)) {
        start_switch_fiber(&fake_stack_save, leader.stack, leader.stack_size);
        _longjmp(*(sigjmp_buf *)co->entry_arg, 1);
    }

    finish_switch_fiber(fake_stack_save);

    for (;;) {
        co->entry(co->entry_arg);
        qemu_coroutine_switch(co, co->caller, COROUTINE_TERMINATE);
    }
}

Coroutine *qemu_coroutine_new(void)
{
    CoroutineUContext *co;
    ucontext_t old_uc, uc;
    sigjmp_buf old_env;
    void *fake_stack_save = NULL;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t ptr;

    co = g_new0(CoroutineUContext, 1);
    co->stack_size = COROUTINE_STACK_SIZE;
    co->stack = mmap(NULL, co->stack_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (co->stack == MAP_FAILED) {
        g_error("coroutine: cannot allocate stack: %s", g_strerror(errno));
    }
    /* Guard page: a stack overflow faults instead of corrupting memory. */
    mprotect(co->stack, page, PROT_NONE);

    if (getcontext(&uc) == -1) {
        g_error("coroutine: getcontext failed");
    }
    co->base.entry_arg = &old_env;    /* only used to return here below */
    uc.uc_link = &old_uc;
    uc.uc_stack.ss_sp = co->stack;
    uc.uc_stack.ss_size = co->stack_size;
    uc.uc_stack.ss_flags = 0;

    ptr = (uintptr_t)co;
    makecontext(&uc, (void (*)(void))coroutine_trampoline, 2,
                (int)(uint32_t)ptr, (int)(uint32_t)(ptr >> 32));

    /* Run the trampoline far enough to fill co->env, then come back. */
    if (!_setjmp(old_env)) {
        start_switch_fiber(&fake_stack_save, co->stack, co->stack_size);
        swapcontext(&old_uc, &uc);
    }
    finish_switch_fiber(fake_stack_save);

    return &co->base;
}

void qemu_coroutine_delete(Coroutine *co_)
{
    CoroutineUContext *co = container_of(co_, CoroutineUContext, base);

    munmap(co->stack, co->stack_size);
    g_free(co);
}

CoroutineAction qemu_coroutine_switch(Coroutine *from_, Coroutine *to_,
                                      CoroutineAction action)
{
    CoroutineUContext *from = container_of(from_, CoroutineUContext, base);
    CoroutineUContext *to = container_of(to_, CoroutineUContext, base);
    void *fake_stack_save = NULL;
    int ret;

    current = to_;

    ret = _setjmp(from->env);
    if (ret == 0) {
        start_switch_fiber(action == COROUTINE_TERMINATE ?
                           NULL : &fake_stack_save,
                           to->stack, to->stack_size);
        _longjmp(to->env, action);
    }
    finish_switch_fiber(fake_stack_save);
    return ret;
}

Coroutine *qemu_coroutine_self(void)
{
    return current == &leader.base ? NULL : current;
}

bool qemu_in_coroutine(void)
{
    return current != NULL && current != &leader.base;
}

Coroutine *qemu_coroutine_leader(void)
{
    return &leader.base;
}
