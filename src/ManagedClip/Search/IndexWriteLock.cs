using System.Text;

namespace ManagedClip.Search;

/// <summary>
/// One writer per index file: two indexing runs into the same file would each replace the other's work. The lock is
/// the operating system's on <c>INDEX.lock</c> beside the index (a share-none handle: flock on Unix, a sharing lock on
/// Windows), so it ends with the process however the process ends; the file a killed run leaves behind is simply
/// locked again by the next run. Taking it also proves, before any work, that the index's folder can be written.
/// </summary>
/// <remarks>
/// The lock file is deleted on release while still held. A run that opened the file just before that deletion and
/// locked it just after holds a file no longer at the path, while a third run may have created a new one there;
/// so a run checks, once it holds the lock, that the path still names its file (same modification time as its own
/// handle, which its write has just set), and tries again otherwise.
/// </remarks>
internal sealed class IndexWriteLock : IDisposable
{
    readonly FileStream _file;
    readonly string _path;

    IndexWriteLock(FileStream file, string path) { _file = file; _path = path; }

    /// <summary>Locks the index at <paramref name="indexPath"/> for writing, or throws <see cref="IndexException"/> naming it.</summary>
    public static IndexWriteLock Acquire(string indexPath)
    {
        string lockPath = Path.GetFullPath(indexPath) + ".lock";
        for (int attempt = 0; attempt < 10; attempt++)
        {
            FileStream file;
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
                // Windows cannot delete a file open without FileShare.Delete, and there nobody can open it while it is held: DeleteOnClose is race-free.
                file = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1,
                    OperatingSystem.IsWindows() ? FileOptions.DeleteOnClose : FileOptions.None);
            }
            catch (IOException e) when (e is not (FileNotFoundException or DirectoryNotFoundException or PathTooLongException) && File.Exists(lockPath))
            {
                throw new IndexException($"{indexPath}: another run is writing this index (its lock {lockPath} is held); wait for it to finish, or index into another file");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IndexException($"{indexPath}: cannot write the index there ({e.Message})", e);
            }
            try
            {
                // Who holds it, for a person who finds the file; the write also sets the modification time checked below.
                file.SetLength(0);
                file.Write(Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
                file.Flush();
                if (File.GetLastWriteTimeUtc(file.SafeFileHandle) == File.GetLastWriteTimeUtc(lockPath)) return new IndexWriteLock(file, lockPath);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                file.Dispose();
                throw new IndexException($"{indexPath}: cannot write the index there ({e.Message})", e);
            }
            file.Dispose(); // a file deleted by the previous holder: not the lock any more
        }
        throw new IndexException($"{indexPath}: could not lock the index ({lockPath} kept changing); another run is writing it");
    }

    public void Dispose()
    {
        if (!OperatingSystem.IsWindows())
            try { File.Delete(_path); } catch (IOException) { } catch (UnauthorizedAccessException) { } // a leftover file is harmless: the next run locks it
        _file.Dispose();
    }
}
