namespace ManagedClip.Storage;

/// <summary>
/// Replaces a file so that a crash at any moment leaves either the old file or the new one: the content goes to a
/// temporary file in the same folder, is flushed to the disk (fsync), and is renamed over the target (rename(2) is
/// atomic on POSIX; File.Move with overwrite uses MoveFileEx on Windows).
/// </summary>
internal static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(folder);
        RemoveStale(folder, Path.GetFileName(full));
        string temporary = Path.Combine(folder, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temporary); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Temporary files left by a process that was killed mid-write (its id no longer runs) are deleted.</summary>
    static void RemoveStale(string folder, string name)
    {
        try
        {
            foreach (var file in Directory.EnumerateFiles(folder, $".{name}.*.tmp"))
            {
                var parts = Path.GetFileName(file)[(name.Length + 2)..].Split('.');
                if (parts.Length != 3 || !int.TryParse(parts[0], out int pid) || pid == Environment.ProcessId || IsRunning(pid)) continue;
                File.Delete(file);
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    static bool IsRunning(int pid)
    {
        try { using var process = System.Diagnostics.Process.GetProcessById(pid); return !process.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }
}
