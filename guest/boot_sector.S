/*
 * rmig test guest: a 512-byte x86 boot sector that dirties memory in a pattern
 * a verifier can check after migration (same design as the guest of QEMU's
 * tests/qtest/migration-test).
 *
 * The BIOS loads this sector at 0x7c00 and jumps to it in 16-bit real mode.
 * It enables A20 (fast A20, port 0x92), loads a flat GDT, switches to 32-bit
 * protected mode and loops forever:
 *
 *     for (;;) {
 *         for (p = PATTERN_START; p < PATTERN_END; p += PAGE_SIZE)
 *             ++*(uint8_t *)p;          // first byte of every 4 KiB page
 *         outb(MARKER, SERIAL_PORT);    // one marker per completed pass
 *     }
 *
 * It uses no stack and stores nothing else in memory, so in [1 MiB, 100 MiB)
 * only the first byte of each page is ever non-zero, and a snapshot of the
 * first bytes reads n+1 ... n+1, n ... n (mod 256).
 *
 * The constants below must match guest/guest_check.hpp.
 *
 * Built with: gcc -m32 -c boot_sector.S; ld -m elf_i386 -Ttext 0x7c00
 * --oformat binary (see guest/CMakeLists.txt).
 */

#define PATTERN_START 0x00100000 /* 1 MiB */
/* The build may shrink the rewritten range (-DPATTERN_END=...) and fill a
 * larger one once first (-DFILL_END=...): rmig-test-guest-hot16m.img has 191 MiB
 * of non-zero memory and a 16 MiB hot working set, so it converges on a
 * 1 Gbit/s link (bench/scripts/blackout_throttled.sh). -DPACE_LOOPS=N spins N
 * loops after each page write (rmig-test-guest-paced.img: a dirty rate that
 * scales with the vCPU's share, bench/scripts/convergence_channel.sh). Only
 * the default image matches guest_check.hpp's verifier. */
#ifndef PATTERN_END
#define PATTERN_END   0x06400000 /* 100 MiB, exclusive */
#endif
#define PAGE_SIZE     0x1000
/* -DDISK_WRITES: rmig-test-guest-disk.img also writes its pass count to its
 * disk (see below; lab/libvirt checks it after a storage migration). */
#define DISK_SLOTS    8           /* sectors 1..8, a power of two */
#define DISK_MAGIC    0x47494d52  /* "RMIG" */
#define SERIAL_PORT   0x3f8      /* COM1 data register */
#define MARKER        'B'

#define CODE_SEL      0x08
#define DATA_SEL      0x10

        .section .text
        .globl  _start

        .code16
_start:
        cli
        cld
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    $0x7c00, %sp

        /* Fast A20: set bit 1 of system control port A; keep bit 0 (reset) clear. */
        inb     $0x92, %al
        orb     $0x02, %al
        andb    $0xfe, %al
        outb    %al, $0x92

        lgdtl   gdt_desc

        movl    %cr0, %eax
        orl     $1, %eax                /* CR0.PE */
        movl    %eax, %cr0
        ljmpl   $CODE_SEL, $protected_mode

        .code32
protected_mode:
        movw    $DATA_SEL, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %fs
        movw    %ax, %gs
        movw    %ax, %ss
        movl    $0x7c00, %esp           /* unused: no calls, no pushes */

        movw    $SERIAL_PORT, %dx
        movb    $MARKER, %al
#ifdef DISK_WRITES
        xorl    %esi, %esi              /* passes written to the disk */
#endif
#ifdef FILL_END
        /* Variant: touch every page up to FILL_END once, so the guest has that
         * much non-zero memory to move, then rewrite only the hot range. */
        movl    $PATTERN_START, %ebx
fill:
        incb    (%ebx)
        addl    $PAGE_SIZE, %ebx
        cmpl    $FILL_END, %ebx
        jb      fill
#endif
pass:
        movl    $PATTERN_START, %ebx
page:
        incb    (%ebx)
#ifdef PACE_LOOPS
        /* Variant: spin between two page writes, so the guest dirties pages
         * at a rate proportional to the CPU it gets (as a real workload
         * does), and QEMU's throttle slows its writes by as much as it slows
         * the vCPU. The memset-speed default redirties its whole range even
         * at a 99% throttle. */
        movl    $PACE_LOOPS, %ecx
1:      decl    %ecx
        jnz     1b
        /* ... and a marker per 4 MiB written instead of one per pass, so a
         * watcher can time its write rate within a second or two. */
        testl   $0x003ff000, %ebx
        jnz     2f
        outb    %al, %dx
2:
#endif
        addl    $PAGE_SIZE, %ebx
        cmpl    $PATTERN_END, %ebx
        jb      page
#ifndef PACE_LOOPS
        outb    %al, %dx
#endif
#ifdef DISK_WRITES
        /* Variant: after each pass, write the pass count to the disk (ATA PIO,
         * LBA28, primary master) so a storage migration has a disk the guest
         * writes while it moves. Pass c fills sector 1 + (c % DISK_SLOTS) with
         * 64 copies of {DISK_MAGIC, c} (little endian): after m >= DISK_SLOTS
         * passes the slots hold m-DISK_SLOTS+1 ... m, one each. The data goes
         * out of registers (outl), so memory stays as the verifier expects.
         * Interrupts are off (cli): no IRQ 14 to handle. */
        incl    %esi
        movw    $0x1f7, %dx
1:      inb     %dx, %al                /* wait until not busy */
        testb   $0x80, %al
        jnz     1b
        movw    $0x1f6, %dx
        movb    $0xe0, %al              /* LBA, master, LBA 24..27 = 0 */
        outb    %al, %dx
        movw    $0x1f2, %dx
        movb    $1, %al                 /* one sector */
        outb    %al, %dx
        movl    %esi, %eax
        andl    $(DISK_SLOTS - 1), %eax
        incl    %eax
        incw    %dx                     /* 0x1f3: LBA 0..7 */
        outb    %al, %dx
        xorb    %al, %al
        incw    %dx                     /* 0x1f4: LBA 8..15 */
        outb    %al, %dx
        incw    %dx                     /* 0x1f5: LBA 16..23 */
        outb    %al, %dx
        movw    $0x1f7, %dx
        movb    $0x30, %al              /* WRITE SECTORS */
        outb    %al, %dx
2:      inb     %dx, %al                /* wait for DRQ (not busy) */
        testb   $0x80, %al
        jnz     2b
        testb   $0x08, %al
        jz      2b
        movw    $0x1f0, %dx
        movl    $64, %ecx
3:      movl    $DISK_MAGIC, %eax
        outl    %eax, %dx
        movl    %esi, %eax
        outl    %eax, %dx
        loop    3b
        movw    $SERIAL_PORT, %dx
        movb    $MARKER, %al
#endif
        jmp     pass

        /* Flat 4 GiB segments, base 0, 4 KiB granularity. */
        .p2align 3
gdt:
        .quad   0                       /* null descriptor */
        .quad   0x00cf9a000000ffff      /* 0x08: code, execute/read, 32-bit, DPL 0 */
        .quad   0x00cf92000000ffff      /* 0x10: data, read/write, 32-bit, DPL 0 */
gdt_end:

gdt_desc:
        .word   gdt_end - gdt - 1       /* limit */
        .long   gdt                     /* linear base */

        /* Boot signature at bytes 510..511; .org fails to assemble if the code grows past it. */
        .org    510
        .byte   0x55, 0xaa

        .section .note.GNU-stack, "", @progbits
