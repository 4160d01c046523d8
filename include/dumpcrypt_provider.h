/*
 * dumpcrypt_provider.h - the provider interface of dumpcrypt, the crash dump and hibernation
 * filter: how a volume-encryption driver hands dumpcrypt the keys and geometry of the volume
 * it encrypts, so that crash dumps and hibernation files written to that volume are
 * encrypted as the volume is.
 *
 * Include it after <wdm.h> or <ntddk.h>. The Rust crate dumpcrypt-provider has the same
 * layout; both sides assert every offset and size (x64).
 *
 * The handshake (docs/provider.md gives every rule of each side):
 *  1. The provider creates the callback object DUMPCRYPT_CALLBACK_NAME (ExCreateCallback,
 *     Create TRUE, AllowMultipleCallbacks TRUE) and registers a DUMPCRYPT_PROVIDER_FUNCTION
 *     on it (ExRegisterCallback) for as long as it can answer.
 *  2. When a dump stack loads a copy of dumpcrypt that encrypts with KeySource = provider,
 *     dumpcrypt's DriverEntry (PASSIVE_LEVEL) calls ExNotifyCallback(object, &Query,
 *     &Answer). Argument1 is a DUMPCRYPT_QUERY; Argument2 a zeroed DUMPCRYPT_ANSWER of
 *     Query->AnswerSize bytes in dumpcrypt's nonpaged memory.
 *  3. The provider answers only if Query->Disk is its volume's disk and Answer->Magic is
 *     still 0 (another provider may have answered), and returns at once.
 *  4. dumpcrypt copies the keys, wipes the answer, and afterwards reads nothing of the
 *     provider's but the optional DUMPCRYPT_LIVE_STATE, with plain loads.
 */
#ifndef DUMPCRYPT_PROVIDER_H
#define DUMPCRYPT_PROVIDER_H

#define DUMPCRYPT_CALLBACK_NAME L"\\Callback\\DumpCryptProvider"

#define DUMPCRYPT_MAGIC 0x56504344UL /* 'DCPV' in memory order */
#define DUMPCRYPT_MAJOR_VERSION 1
#define DUMPCRYPT_MINOR_VERSION 0
#define DUMPCRYPT_MAX_RANGES 4
#define DUMPCRYPT_KEY_LENGTH 64

#define DUMPCRYPT_STYLE_MBR 0
#define DUMPCRYPT_STYLE_GPT 1

#define DUMPCRYPT_ALLOW_CRASH_DUMP 0x1UL
#define DUMPCRYPT_ALLOW_HIBERNATION 0x2UL

#define DUMPCRYPT_LIVE_ACTIVE 0x1UL

/* A disk by its partition table, as FILTER_EXTENSION's DISK_PARTITION_INFO names it. */
typedef struct _DUMPCRYPT_DISK_IDENTITY {
    ULONG Style;        /* DUMPCRYPT_STYLE_MBR or DUMPCRYPT_STYLE_GPT */
    ULONG MbrSignature; /* MBR disks */
    GUID GptDiskId;     /* GPT disks */
} DUMPCRYPT_DISK_IDENTITY, *PDUMPCRYPT_DISK_IDENTITY;

/* What dumpcrypt asks: Argument1 of ExNotifyCallback. */
typedef struct _DUMPCRYPT_QUERY {
    ULONG Magic;                  /* DUMPCRYPT_MAGIC */
    USHORT MajorVersion;          /* of the dumpcrypt that asks */
    USHORT MinorVersion;
    ULONG Size;                   /* sizeof(DUMPCRYPT_QUERY) */
    ULONG DumpType;               /* 1 crash dump, 2 hibernation */
    DUMPCRYPT_DISK_IDENTITY Disk; /* the dump device's disk */
    ULONGLONG PartitionStart;     /* the dump partition's first byte on that disk */
    ULONG AnswerSize;             /* bytes of the answer buffer, zeroed */
    ULONG Reserved;
} DUMPCRYPT_QUERY, *PDUMPCRYPT_QUERY;

/* One encrypted range and its XTS-AES-256 key (data key, then tweak key; halves differ).
 * Start and End are tweak positions: partition offsets, or disk offsets with disk-absolute
 * tweaks; multiples of the data unit (End may be ~0ULL: to the end). Half-open. */
typedef struct _DUMPCRYPT_RANGE {
    ULONGLONG Start;
    ULONGLONG End;
    UCHAR Key[DUMPCRYPT_KEY_LENGTH];
} DUMPCRYPT_RANGE, *PDUMPCRYPT_RANGE;

/* What may change while the provider is registered, in its nonpaged memory. The provider
 * makes Sequence odd before changing the other fields and even after; dumpcrypt reads with
 * plain loads at Dump_Start and on each write, and on a torn read encrypts every range to
 * its full End. */
typedef struct _DUMPCRYPT_LIVE_STATE {
    volatile ULONG Sequence;
    ULONG Flags;                                   /* DUMPCRYPT_LIVE_ACTIVE */
    ULONGLONG EncryptedEnd[DUMPCRYPT_MAX_RANGES];  /* current end of each range */
} DUMPCRYPT_LIVE_STATE, *PDUMPCRYPT_LIVE_STATE;

/* What the provider fills in: Argument2 of ExNotifyCallback. */
typedef struct _DUMPCRYPT_ANSWER {
    ULONG Magic;                     /* DUMPCRYPT_MAGIC; 0: nobody answered */
    USHORT MajorVersion;             /* DUMPCRYPT_MAJOR_VERSION */
    USHORT MinorVersion;
    ULONG Size;                      /* bytes filled: at least DUMPCRYPT_ANSWER_SIZE_V1 */
    ULONG Flags;                     /* DUMPCRYPT_ALLOW_CRASH_DUMP | DUMPCRYPT_ALLOW_HIBERNATION */
    DUMPCRYPT_DISK_IDENTITY Volume;  /* the disk of the volume the provider encrypts */
    ULONGLONG PartitionStart;        /* the volume's first byte on that disk */
    ULONGLONG PartitionLength;
    ULONG DataUnitSize;              /* 512 or 4096 */
    ULONG TweakBase;                 /* 0 partition-relative, 1 disk-absolute */
    ULONG RangeCount;                /* 1 to DUMPCRYPT_MAX_RANGES, sorted, not overlapping */
    ULONG Reserved;
    DUMPCRYPT_RANGE Ranges[DUMPCRYPT_MAX_RANGES];
    const DUMPCRYPT_LIVE_STATE *LiveState; /* optional: nonpaged, live while registered */
} DUMPCRYPT_ANSWER, *PDUMPCRYPT_ANSWER;

#define DUMPCRYPT_QUERY_SIZE_V1 0x38
#define DUMPCRYPT_ANSWER_SIZE_V1 0x190

/* The function a provider registers: ExRegisterCallback's PCALLBACK_FUNCTION, with
 * Argument1 a PDUMPCRYPT_QUERY and Argument2 a PDUMPCRYPT_ANSWER. */
typedef VOID DUMPCRYPT_PROVIDER_FUNCTION(PVOID CallbackContext, PVOID Argument1, PVOID Argument2);

/* The layout (x64), as the Rust crate dumpcrypt-provider asserts it too. */
#if defined(_WIN64)
_Static_assert(sizeof(DUMPCRYPT_DISK_IDENTITY) == 0x18, "DUMPCRYPT_DISK_IDENTITY size");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_DISK_IDENTITY, MbrSignature) == 0x04, "MbrSignature");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_DISK_IDENTITY, GptDiskId) == 0x08, "GptDiskId");

_Static_assert(sizeof(DUMPCRYPT_QUERY) == DUMPCRYPT_QUERY_SIZE_V1, "DUMPCRYPT_QUERY size");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_QUERY, MajorVersion) == 0x04, "Query.MajorVersion");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_QUERY, MinorVersion) == 0x06, "Query.MinorVersion");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_QUERY, Size) == 0x08, "Query.Size");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_QUERY, DumpType) == 0x0C, "Query.DumpType");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_QUERY, Disk) == 0x10, "Query.Disk");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_QUERY, PartitionStart) == 0x28, "Query.PartitionStart");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_QUERY, AnswerSize) == 0x30, "Query.AnswerSize");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_QUERY, Reserved) == 0x34, "Query.Reserved");

_Static_assert(sizeof(DUMPCRYPT_RANGE) == 0x50, "DUMPCRYPT_RANGE size");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_RANGE, End) == 0x08, "Range.End");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_RANGE, Key) == 0x10, "Range.Key");

_Static_assert(sizeof(DUMPCRYPT_LIVE_STATE) == 0x28, "DUMPCRYPT_LIVE_STATE size");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_LIVE_STATE, Flags) == 0x04, "LiveState.Flags");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_LIVE_STATE, EncryptedEnd) == 0x08, "LiveState.EncryptedEnd");

_Static_assert(sizeof(DUMPCRYPT_ANSWER) == DUMPCRYPT_ANSWER_SIZE_V1, "DUMPCRYPT_ANSWER size");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, MajorVersion) == 0x04, "Answer.MajorVersion");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, MinorVersion) == 0x06, "Answer.MinorVersion");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, Size) == 0x08, "Answer.Size");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, Flags) == 0x0C, "Answer.Flags");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, Volume) == 0x10, "Answer.Volume");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, PartitionStart) == 0x28, "Answer.PartitionStart");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, PartitionLength) == 0x30, "Answer.PartitionLength");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, DataUnitSize) == 0x38, "Answer.DataUnitSize");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, TweakBase) == 0x3C, "Answer.TweakBase");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, RangeCount) == 0x40, "Answer.RangeCount");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, Reserved) == 0x44, "Answer.Reserved");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, Ranges) == 0x48, "Answer.Ranges");
_Static_assert(FIELD_OFFSET(DUMPCRYPT_ANSWER, LiveState) == 0x188, "Answer.LiveState");
#endif

#endif /* DUMPCRYPT_PROVIDER_H */
