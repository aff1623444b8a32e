using System.Runtime.InteropServices;

namespace ManagedClip.Tests.Support;

/// <summary>
/// Native memory whose last byte lies just before a page the process may not touch: a read even one byte past the end
/// crashes the test run instead of passing unnoticed. Tests wrap it in a span to check that vector code with 8- or
/// 32-byte loads stays inside its input.
/// </summary>
internal sealed unsafe partial class GuardedMemory : IDisposable
{
    private readonly byte* _mapping;
    private readonly nuint _mappingSize;

    public GuardedMemory(int length)
    {
        nuint page = (nuint)Environment.SystemPageSize;
        nuint dataPages = ((nuint)Math.Max(length, 1) + page - 1) / page;
        _mappingSize = (dataPages + 1) * page;
        if (OperatingSystem.IsWindows())
        {
            _mapping = (byte*)VirtualAlloc(null, _mappingSize, MemCommit | MemReserve, PageReadWrite);
            if (_mapping == null || !VirtualProtect(_mapping + dataPages * page, page, PageNoAccess, out _)) throw new InvalidOperationException("VirtualAlloc/VirtualProtect failed");
        }
        else
        {
            int anonymous = OperatingSystem.IsLinux() ? 0x20 : 0x1000; // MAP_ANONYMOUS: Linux, macOS/BSD
            _mapping = (byte*)mmap(null, _mappingSize, ProtRead | ProtWrite, MapPrivate | anonymous, -1, 0);
            if (_mapping == (byte*)-1 || mprotect(_mapping + dataPages * page, page, ProtNone) != 0) throw new InvalidOperationException("mmap/mprotect failed");
        }
        Length = length;
        Start = _mapping + dataPages * page - (nuint)length;
    }

    public byte* Start { get; }
    public int Length { get; }
    public Span<byte> Span => new(Start, Length);

    public void Dispose()
    {
        if (OperatingSystem.IsWindows()) VirtualFree(_mapping, 0, MemRelease);
        else munmap(_mapping, _mappingSize);
    }

    private const int ProtNone = 0, ProtRead = 1, ProtWrite = 2, MapPrivate = 2;
    private const uint MemCommit = 0x1000, MemReserve = 0x2000, MemRelease = 0x8000, PageReadWrite = 4, PageNoAccess = 1;

    [LibraryImport("libc")] private static partial void* mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);
    [LibraryImport("libc")] private static partial int mprotect(void* address, nuint length, int protection);
    [LibraryImport("libc")] private static partial int munmap(void* address, nuint length);
    [LibraryImport("kernel32")] private static partial void* VirtualAlloc(void* address, nuint size, uint type, uint protection);
    [LibraryImport("kernel32")] [return: MarshalAs(UnmanagedType.Bool)] private static partial bool VirtualProtect(void* address, nuint size, uint protection, out uint old);
    [LibraryImport("kernel32")] [return: MarshalAs(UnmanagedType.Bool)] private static partial bool VirtualFree(void* address, nuint size, uint type);
}
